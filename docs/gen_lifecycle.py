"""Regenerate the generated part of docs/lifecycle.md from core/fsm.py's table.

usage: python docs/gen_lifecycle.py   (tests/unit/core/test_fsm.py fails when it is stale)
"""

import pathlib

from metalcubed.core import fsm

BEGIN = "<!-- BEGIN GENERATED: lifecycle table (python docs/gen_lifecycle.py) -->"
END = "<!-- END GENERATED -->"
DOC = pathlib.Path(__file__).with_name("lifecycle.md")


def generated() -> str:
    rows = [
        "| state | stable | takes a provisioning slot to enter | meaning |",
        "|---|---|---|---|",
    ]
    for state, info in fsm.STATES.items():
        rows.append(
            f"| `{state.value or '(none)'}` | {'yes' if info.stable else ''} | "
            f"{'yes' if info.needs_capacity_to_enter else ''} | {info.description} |"
        )
    transitions = ["| from | event | to |", "|---|---|---|"]
    for (src, event), dst in fsm.TRANSITIONS.items():
        transitions.append(f"| `{src.value or '(none)'}` | {event.value} | `{dst.value}` |")
    return "\n".join(
        [BEGIN, "", "```mermaid", fsm.render_mermaid(), "```", "", *rows, "", *transitions, "", END]
    )


def render(text: str) -> str:
    start, end = text.index(BEGIN), text.index(END) + len(END)
    return text[:start] + generated() + text[end:]


if __name__ == "__main__":
    DOC.write_text(render(DOC.read_text()))
    print(f"wrote {DOC}")
