"""The terminal chat: a conversation held in the terminal (or fed through a pipe), with
in-chat commands. It talks to a `Backend`; it does not know how models are loaded."""
