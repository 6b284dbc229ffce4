"""Tutorial plugins of the ledgerflow examples."""
