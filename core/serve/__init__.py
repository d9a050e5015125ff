"""``mas-demo``: an interactive page (Gradio) for any checkpoint, the floor above ``core.report``.

``core.serve.maps`` (torch only) is what a domain's ``demo.py`` uses to read one head of one layer;
``core.serve.session`` runs a checkpoint's predictor and draws the map; ``core.serve.demo`` builds the page
and is the console entry (gradio is imported only there, and only when the page is built).
"""
