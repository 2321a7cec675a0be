"""`cnn-numpy serve`: a local page where you draw a digit and watch every layer work.

api.py computes the answers (plain functions, no web framework); server.py
serves them and the page (static/: plain HTML, CSS and JavaScript) with
Starlette and uvicorn, the optional `web` extra.
"""
