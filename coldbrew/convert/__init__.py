"""Converters: one module per library, each turning a fitted model into `.brew` arrays and writing the file.

May import: errors, format, engine (to check its output bit for bit). The libraries themselves are imported
lazily, only by the converter that needs them; nothing on the serving path imports this package.
"""
