"""`python -m cs_nets` runs the `csnets` command group."""

from cs_nets.cli import main

main()
