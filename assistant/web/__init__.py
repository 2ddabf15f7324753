"""Web: the server side of the app.

Takes the assistant. Gives the Gradio rendering (:mod:`.webui`), the REST API
(:mod:`.rest`), the assistant loaded in the background with quick start (:mod:`.service`),
and the feedback store (:mod:`.feedback`). ``app.py`` at the top of the repository puts them
together.
"""
