from ledgerflow.cli.main import main

raise SystemExit(main())
