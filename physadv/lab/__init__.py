"""The lab workflow (top floor): a run folder with one SQLite store, driven stage by stage."""
