"""The title the offline Space declares, which is how the pipeline tells it from a real Space.

It lives here, with no imports, so `space/` needs nothing of the pipeline and `jobs.engine` reads
the very string the app declares.
"""

__all__ = ["OFFLINE_DEMO_TITLE", "offline_demo_title"]

# The offline Space's Gradio title starts with this; jobs.engine.engine_from_title looks for it.
OFFLINE_DEMO_TITLE = "EasyControl Ghibli, offline demo engine"


def offline_demo_title(engine: str) -> str:
    """The title the offline Space declares for one of its engines ('ghibli' or 'fast')."""
    return f"{OFFLINE_DEMO_TITLE} ({engine})"
