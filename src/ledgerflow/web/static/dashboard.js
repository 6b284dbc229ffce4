/* ledgerflow dashboard: draws the graphs (cytoscape.js + dagre) and keeps a running run's
   graph up to date. Everything shown comes from the JSON endpoints and is set as text
   (cytoscape labels are drawn on a canvas, never parsed as HTML). */
(function () {
  "use strict";

  var COLOURS = {
    done: "#2e9e4f", cached: "#1f8fb3", running: "#d9a21b", pending: "#9aa0a6",
    failed: "#d33a2c", skipped: "#a349a4", interrupted: "#e06c1f"
  };
  window.ledgerflowGraphs = {};

  function style() {
    var rules = [
      { selector: "node", style: {
          "label": "data(label)", "font-size": 11, "text-valign": "center", "text-halign": "center",
          "color": "#fff", "text-outline-width": 1.5, "text-outline-color": "data(colour)",
          "background-color": "data(colour)", "shape": "round-rectangle",
          "width": "label", "height": 22, "padding": "8px" } },
      { selector: "node.group", style: { "border-width": 3, "border-color": "#20262d", "height": 34 } },
      { selector: "node.more", style: { "border-width": 1, "border-style": "dashed", "border-color": "#20262d" } },
      { selector: "node.value", style: { "shape": "ellipse", "background-color": "#eef1f4",
          "color": "#1d2329", "text-outline-width": 0, "border-width": 1, "border-color": "#9aa0a6" } },
      { selector: "node.root", style: { "border-width": 3, "border-color": "#1f5fa8" } },
      { selector: "node.call", style: { "background-color": "#4b5563", "text-outline-color": "#4b5563" } },
      { selector: "edge", style: { "width": 1.5, "curve-style": "bezier", "target-arrow-shape": "triangle",
          "line-color": "#7c8a99", "target-arrow-color": "#7c8a99", "arrow-scale": 0.8 } },
      { selector: "edge.call", style: { "line-style": "dashed", "line-color": "#c2c8cf", "target-arrow-color": "#c2c8cf" } },
      { selector: "edge[label]", style: { "label": "data(label)", "font-size": 9, "color": "#6b7280",
          "text-background-color": "#fff", "text-background-opacity": 1 } }
    ];
    return rules;
  }

  function draw(container, elements, direction) {
    var cy = window.cytoscape({
      container: container, elements: elements, style: style(), wheelSensitivity: 0.3,
      minZoom: 0.05, maxZoom: 3,
      layout: { name: "dagre", rankDir: direction || "TB", nodeSep: 18, rankSep: 45, animate: false }
    });
    container.dataset.nodes = String(cy.nodes().length);
    container.dataset.ready = "1";
    window.ledgerflowGraphs[container.id] = cy;
    return cy;
  }

  function getJSON(url) {
    return fetch(url, { credentials: "same-origin", headers: { "Accept": "application/json" } })
      .then(function (r) { if (!r.ok) { throw new Error("HTTP " + r.status); } return r.json(); });
  }

  function note(text) {
    var el = document.getElementById("graph-note");
    if (el) { el.textContent = text; }
  }

  /* -- a run's graph -------------------------------------------------------------------- */

  function runElements(graph) {
    var els = [];
    graph.nodes.forEach(function (n) {
      var label = n.label;
      els.push({ group: "nodes", classes: n.kind + " st-" + n.status,
                 data: { id: n.id, label: label, status: n.status, kind: n.kind, task: n.task,
                         colour: COLOURS[n.status] || "#9aa0a6" } });
    });
    graph.edges.forEach(function (e, i) {
      var data = { id: "e" + i, source: e.source, target: e.target };
      if (e.count > 1) { data.label = String(e.count); }
      els.push({ group: "edges", classes: e.kind, data: data });
    });
    return els;
  }

  function runGraph(container) {
    var expanded = [];
    var cy = null;
    var signature = "";
    function url() {
      var src = container.dataset.src;
      return expanded.length ? src + "?expand=" + expanded.map(encodeURIComponent).join(",") : src;
    }
    function render(graph) {
      var sig = graph.nodes.map(function (n) { return n.id; }).join("|");
      note(graph.grouped ? graph.task_runs + " task runs, grouped by task: click a group to expand it"
                         : graph.task_runs + " task runs");
      if (cy && sig === signature) {
        graph.nodes.forEach(function (n) {
          var node = cy.getElementById(n.id);
          node.classes(n.kind + " st-" + n.status);
          node.data({ status: n.status, label: n.label, colour: COLOURS[n.status] || "#9aa0a6" });
        });
        return;
      }
      if (cy) { cy.destroy(); }
      signature = sig;
      cy = draw(container, runElements(graph), "TB");
      cy.on("tap", "node", function (evt) {
        var n = evt.target.data();
        if (n.kind === "task_run") { window.location.href = "/task-runs/" + encodeURIComponent(n.id); }
        else if (n.kind === "group") { expanded.push(n.task); load(); }
      });
    }
    function load() { return getJSON(url()).then(render).catch(function (err) { note("graph unavailable: " + err.message); }); }
    load().then(function () {
      if (container.dataset.live !== "1") { return; }
      var timer = setInterval(function () {
        var status = document.getElementById("run-status");
        var still = status && status.textContent.trim() === "running";
        load();
        if (!still) { clearInterval(timer); }
      }, 2000);
    });
  }

  /* -- a value's dataflow ---------------------------------------------------------------- */

  function flowElements(flow) {
    var els = [];
    flow.values.forEach(function (v) {
      var text = v.name + " = " + (v.path || v.preview || v.type_name || v.hash.slice(0, 8));
      els.push({ group: "nodes", classes: "value" + (v.hash === flow.root ? " root" : ""),
                 data: { id: "v:" + v.hash, label: text.length > 48 ? text.slice(0, 47) + "…" : text,
                         href: "/values/" + v.hash, colour: "#eef1f4" } });
    });
    flow.calls.forEach(function (c) {
      var name = c.task_name.split(".").pop();
      els.push({ group: "nodes", classes: "call",
                 data: { id: "c:" + c.hash, label: name + "()", href: "/calls/" + c.hash, colour: "#4b5563" } });
    });
    flow.edges.forEach(function (e, i) {
      var src = (e.kind === "result" ? "c:" : "v:") + e.source;
      var dst = (e.kind === "result" ? "v:" : "c:") + e.target;
      var data = { id: "e" + i, source: src, target: dst };
      if (e.param) { data.label = e.param; }
      els.push({ group: "edges", data: data });
    });
    return els;
  }

  function dataflowGraph(container) {
    getJSON(container.dataset.src).then(function (flow) {
      var cy = draw(container, flowElements(flow), "LR");
      cy.on("tap", "node", function (evt) { window.location.href = evt.target.data("href"); });
    }).catch(function (err) { container.textContent = "graph unavailable: " + err.message; });
  }

  /* Filters left empty stay out of the address (so /runs?status=failed, not ...&task=&tag=). */
  document.addEventListener("htmx:configRequest", function (evt) {
    var params = evt.detail.parameters;
    Object.keys(params).forEach(function (key) { if (params[key] === "") { delete params[key]; } });
  });

  document.addEventListener("DOMContentLoaded", function () {
    /* cytoscape-dagre registers its layout with window.cytoscape when it loads */
    var run = document.getElementById("run-graph");
    if (run) { runGraph(run); }
    var flow = document.getElementById("dataflow-graph");
    if (flow) { dataflowGraph(flow); }
  });
})();
