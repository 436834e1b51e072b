"""Writes the command-line reference (`cli.md`) from the command tree at build time."""

import mkdocs_gen_files

from dchag_cli.reference import cli_reference

with mkdocs_gen_files.open("cli.md", "w") as fh:
    fh.write(cli_reference())
