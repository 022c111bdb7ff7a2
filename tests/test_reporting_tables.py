"""Markdown tables: one row per line, one cell per column, whatever the text in a cell."""
import pandas as pd

from mmgrec_lib.reporting import save_table
from mmgrec_lib.reporting.tables import to_markdown


def _cells(line: str) -> list[str]:
    """Split a Markdown table row at unescaped pipes (how GitHub reads it)."""
    out, cur, prev = [], "", ""
    for ch in line.strip()[1:-1]:
        if ch == "|" and prev != "\\":
            out.append(cur)
            cur = ""
        else:
            cur += ch
        prev = ch
    return out + [cur]


def test_pipes_and_line_breaks_stay_in_their_cell(tmp_path):
    df = pd.DataFrame({"rung": ["set_loss", "plain"], "note": ["-log mean_t p(i_t|u)\nover targets", "x"],
                       "a|b": [0.5, 1e-6]})
    md = to_markdown(df)
    lines = md.strip().splitlines()
    assert len(lines) == 4                                      # header, rule, two rows
    assert all(len(_cells(line)) == 3 for line in lines)
    assert _cells(lines[2])[1].strip() == "-log mean_t p(i_t\\|u) over targets"
    assert _cells(lines[0])[2].strip() == "a\\|b"
    assert _cells(lines[3])[2].strip() == "1.00e-06"
    save_table(df, "t", tmp_path, caption="cap")
    assert (tmp_path / "tables" / "t.md").read_text() == "cap\n\n" + md
    assert pd.read_csv(tmp_path / "tables" / "t.csv")["note"][0] == "-log mean_t p(i_t|u)\nover targets"  # csv as is
