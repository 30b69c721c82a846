"""python -m builder: the pydock command."""

from builder.cli import main_and_exit

main_and_exit()
