"""`python -m cli` runs the tlog command."""

from cli.main import main

main(prog_name="tlog")
