"""``python -m segrob`` runs the ``segrob`` command (useful where the console script is not on PATH)."""

from segrob_cli.main import app

if __name__ == "__main__":
    app(prog_name="segrob")
