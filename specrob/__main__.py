"""`python -m specrob` is the `specrob` command."""
from specrob.cli import run

run()
