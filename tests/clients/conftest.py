from tests.js_workspace import js_workspace

__all__ = ["js_workspace"]
