"""Report: what a run leaves behind and how the book shows it.

Modules:
    results: the run recorder (``metrics.json``, model card, figures) and the results folders.
    figures: every figure of the study (a package by what is drawn).
    book, pages, performance, render, links: the Jupyter Book, its generated pages
        (Jinja2 MyST templates in ``templates/``) and its link check.
    executed, progress: the executed notebook as the page shows it (parameters without machine
        paths) and the terminal's progress lines and summary table of notebook runs.
"""
