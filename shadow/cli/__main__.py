"""`python -m shadow.cli`: the same as the `shadow` command."""

from shadow.cli.main import main

main()
