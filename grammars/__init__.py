"""The grammar of the property language (`properties.lark`), shipped as package data."""
