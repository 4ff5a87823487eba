"""Write the JSON schemas of custom resources from their CRDs, for
tests/deploy/test_kubernetes.py (kubernetes-validate knows only the built-in kinds).

    python deploy/k8s/schemas/extract.py SOURCE_URL COMMIT CRD.yaml [VERSION]

SOURCE_URL and COMMIT say where the CRD came from (kept in the output). Descriptions are
dropped (the schemas shrink tenfold); everything else is the CRD's openAPIV3Schema of
the served VERSION (default v1), as the API server validates it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import yaml


def without_descriptions(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: without_descriptions(v) for k, v in node.items() if k != "description"}
    if isinstance(node, list):
        return [without_descriptions(v) for v in node]
    return node


def main(source: str, commit: str, crd_file: str, version: str = "v1") -> None:
    crd = yaml.safe_load(Path(crd_file).read_text())
    spec = crd["spec"]
    served = next(v for v in spec["versions"] if v["name"] == version and v["served"])
    group, kind = spec["group"], spec["names"]["kind"]
    bundle = crd["metadata"].get("annotations", {})
    out = Path(__file__).parent / f"{group}_{version}_{kind.lower()}.json"
    out.write_text(json.dumps({
        "source": source, "commit": commit, "annotations": bundle,
        "group": group, "version": version, "kind": kind,
        "schema": without_descriptions(served["schema"]["openAPIV3Schema"]),
    }, indent=1, sort_keys=True) + "\n")
    print(out)


if __name__ == "__main__":
    main(*sys.argv[1:])
