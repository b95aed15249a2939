"""``python -m dlnlab.bench RESULT.json``: the README table of a saved result."""

import json
import sys
from pathlib import Path

from ._report import markdown_table

print(markdown_table(json.loads(Path(sys.argv[1]).read_text())))
