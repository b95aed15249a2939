"""``python -m dlnlab.bench RESULT.json [FIGURE_DIR]``: the README table of a saved result; with ``FIGURE_DIR``, also
B8's scaling figure there (``bench-scaling.png`` and ``.pdf``)."""

import json
import sys
from pathlib import Path

from ._figure import scaling_figure
from ._report import markdown_table

result = json.loads(Path(sys.argv[1]).read_text())
print(markdown_table(result))
if len(sys.argv) > 2 and result["workloads"].get("B8", {}).get("status") == "ok":
    print(Path(sys.argv[2]) / scaling_figure(result["workloads"]["B8"], sys.argv[2]))
