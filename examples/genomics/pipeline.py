"""A toy variant-calling pipeline whose inputs and outputs are files.

Text files stand for the real formats: ``data/*.fastq`` (reads), ``data/reference.fa``,
``out/<sample>.bam`` (a table of aligned reads) and ``out/<sample>.vcf`` (variants)::

    cd examples
    ledgerflow run genomics/pipeline.py:main
    ledgerflow run genomics/pipeline.py:main --reads genomics/data/sample4.fastq
    ledgerflow dataflow out/sample4.vcf

Each step is a task taking and returning :class:`~ledgerflow.File` values, so the ledger
records every file's content hash: editing a FASTQ re-runs that sample only, and a deleted
or modified output is produced again instead of coming from the cache.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from ledgerflow import File, task

#: Relative to the project directory (examples/), where tasks run.
DATA = Path("genomics/data")
READS = [File(DATA / f"sample{i}.fastq") for i in range(1, 5)]
REFERENCE = File(DATA / "reference.fa")
MAX_MISMATCHES = 2


def read_fasta(text: str) -> str:
    """The sequence of a one-record FASTA text."""
    return "".join(line.strip() for line in text.splitlines() if not line.startswith(">"))


def read_fastq(text: str) -> list[tuple[str, str]]:
    """(name, sequence) of every record of a FASTQ text."""
    lines = text.splitlines()
    return [(lines[i][1:], lines[i + 1]) for i in range(0, len(lines) - 3, 4)]


def best_position(read: str, genome: str) -> tuple[int, int] | None:
    """Where a read fits the genome best: (position, mismatches), or None past the limit."""
    best: tuple[int, int] | None = None
    for pos in range(len(genome) - len(read) + 1):
        mismatches = sum(a != b for a, b in zip(read, genome[pos : pos + len(read)]))
        if mismatches <= MAX_MISMATCHES and (best is None or mismatches < best[1]):
            best = (pos, mismatches)
    return best


@task(version="1")
def align(reads: File, reference: File, out_dir: Path = Path("out")) -> File:
    """Align each read to the reference; write OUT_DIR/<sample>.bam (read, pos, mismatches, seq)."""
    genome = read_fasta(reference.read())
    rows = ["#read\tpos\tmismatches\tsequence"]
    for name, sequence in read_fastq(reads.read()):
        hit = best_position(sequence, genome)
        if hit is not None:
            rows.append(f"{name}\t{hit[0] + 1}\t{hit[1]}\t{sequence}")
    out_dir.mkdir(parents=True, exist_ok=True)
    bam = File(out_dir / (reads.as_path().stem + ".bam"))
    bam.write("\n".join(rows) + "\n")
    return bam


@task(version="1")
def call_variants(bam: File, reference: File, min_depth: int = 2) -> File:
    """Call the positions where most aligned reads disagree with the reference (a VCF)."""
    genome = read_fasta(reference.read())
    piles: dict[int, Counter[str]] = {}
    for line in bam.read().splitlines():
        if line.startswith("#"):
            continue
        _, pos, _, sequence = line.split("\t")
        for offset, base in enumerate(sequence):
            piles.setdefault(int(pos) + offset, Counter())[base] += 1
    rows = ["##fileformat=VCFv4.2", "#CHROM\tPOS\tID\tREF\tALT\tQUAL\tFILTER\tINFO"]
    for pos in sorted(piles):
        base, count = piles[pos].most_common(1)[0]
        depth = sum(piles[pos].values())
        ref_base = genome[pos - 1]
        if base != ref_base and depth >= min_depth and count * 2 > depth:
            rows.append(f"chr1\t{pos}\t.\t{ref_base}\t{base}\t{10 * count}\tPASS\tDP={depth}")
    vcf = File(bam.as_path().with_suffix(".vcf"))
    vcf.write("\n".join(rows) + "\n")
    return vcf


@task
def main(
    reads: list[File] = READS,
    reference: File = REFERENCE,
    out_dir: Path = Path("out"),
    min_depth: int = 2,
) -> list[File]:
    """Align the reads of each sample and call its variants.

    Args:
        reads: FASTQ files, one per sample (repeat the option).
        reference: the reference genome (FASTA).
        out_dir: where the .bam and .vcf files are written.
        min_depth: fewest aligned reads to call a variant.
    """
    return [call_variants(align(fastq, reference, out_dir), reference, min_depth)
            for fastq in reads]
