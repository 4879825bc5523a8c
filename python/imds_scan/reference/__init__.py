"""The pure-Python reference engine: the rule IR evaluated plainly, line by line."""
