"""Resizing a Line-API view's scrollable area without reflowing the screen."""

from __future__ import annotations

from textual.geometry import Size
from textual.scroll_view import ScrollView


def set_virtual_size(view: ScrollView, size: Size) -> None:
    """Give ``view`` ``size`` rows and columns to scroll over.

    Assigning ``virtual_size`` asks Textual to lay out the whole screen again (~3x the cost of repainting it),
    which only matters to a widget whose own size follows its content. The flow list and the text views are
    sized by CSS, and their row count changes with every live update or body shown, so when only the height
    changes the scrollbars are updated in place. A new width, or a scrollbar appearing or disappearing (its
    reactive asks for it), still lays the screen out.
    """
    if size.width != view.virtual_size.width:
        view.virtual_size = size
    elif size != view.virtual_size:
        view.set_reactive(ScrollView.virtual_size, size)
        view._scroll_update(size)
