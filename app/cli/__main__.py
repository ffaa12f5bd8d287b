"""`python -m app.cli`: the same CLI as the `leaver` command."""

from app.cli import main

main()
