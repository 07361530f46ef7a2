from nextbest.cli import entry

entry()
