"""The reference table of every config key (``csnets config --reference``; docs/configs.md)."""

import dataclasses

from cs_nets.config.schema import SECTION_CLASSES


def reference_table() -> str:
    """Every config key as a Markdown table: key, default, allowed values, meaning.

    ``csnets config --reference`` prints it; docs/configs.md's table is this text.
    """
    rows = ["| key | default | allowed | meaning |", "|---|---|---|---|"]
    for section, cls in SECTION_CLASSES.items():
        for f in dataclasses.fields(cls):
            default = f.default if f.default_factory is dataclasses.MISSING else f.default_factory()
            meta = f.metadata
            allowed = ", ".join(meta["choices"]) if meta.get("choices") else ""
            for name, op in (("min", ">="), ("gt", ">"), ("max", "<=")):
                if meta.get(name) is not None:
                    allowed += f"{'; ' if allowed else ''}{op} {meta[name]}"
            rows.append(f"| `{section}.{f.name}` | `{default!r}` | {allowed} | {meta.get('doc', '')} |")
    return "\n".join(rows) + "\n"
