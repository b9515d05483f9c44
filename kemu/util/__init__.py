"""Small utilities below every other layer; they import nothing else from kemu."""
