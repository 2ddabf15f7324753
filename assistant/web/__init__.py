"""Web: the server side of the app.

Takes the assistant. Gives the rendering of the chat page (:mod:`.webui` gathers it from
:mod:`.markup`, :mod:`.render`, :mod:`.cards`, :mod:`.evidence_table`, :mod:`.exports` and
:mod:`.page`), the REST API (:mod:`.rest`, its JSON contracts in :mod:`.schemas`), the
assistant loaded in the background with quick start (:mod:`.service`), and the feedback store
(:mod:`.feedback` picks :mod:`.feedback_sqlite` or :mod:`.feedback_postgres`, both behind
:mod:`.feedback_rows`). ``app.py`` at the top of the repository puts them together.
"""
