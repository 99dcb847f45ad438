"""The README's generated sections (parameters, charts, register map, benchmarks) match their sources."""

from tools.docs import README, render


def test_readme_generated_sections_are_up_to_date() -> None:
    _, changed = render(README.read_text())
    assert changed == [], f"README.md is stale in {changed}: run `make docs`"


def test_readme_shows_the_two_commands_first() -> None:
    head = README.read_text().split("## ", 1)[0]
    assert "make run" in head and "make test" in head
