"""Reports for people and CI: plots (matplotlib, SVG or PNG), the HTML page, markdown and JUnit."""
