"""What the chat bubbles show: HTML as text outside code, code untouched, remote images
blocked; errors as one line without internal addresses."""

from __future__ import annotations

from palestra.webui.render import shown, user_error


def test_html_outside_code_is_shown_as_text() -> None:
    text = "What does the <div> tag do? And <input type=text>? Tom & Jerry"
    assert shown(text) == "What does the &lt;div> tag do? And &lt;input type=text>? Tom &amp; Jerry"
    assert shown("> a quote stays a quote") == "> a quote stays a quote"


def test_code_is_left_for_markdown_to_show_literally() -> None:
    text = "Use `<br>` here:\n```html\n<p>hi & bye</p>\n```\nthen <b>this</b>"
    assert shown(text) == "Use `<br>` here:\n```html\n<p>hi & bye</p>\n```\nthen &lt;b>this&lt;/b>"
    unclosed = "```\n<script>x</script>"  # a reply still streaming its code block
    assert shown(unclosed) == unclosed


def test_remote_images_are_not_loaded() -> None:
    assert shown("![cat](https://tracker.example/p.png)") == (
        "[image not loaded: https://tracker.example/p.png]"
    )
    assert shown('<img src="http://x/p.png">') == '&lt;img src="http://x/p.png">'
    inline = "![dot](data:image/png;base64,AAAA)"
    assert shown(inline) == inline  # an image in the reply itself loads from nowhere


def test_errors_lose_internal_addresses() -> None:
    error = RuntimeError("Connection refused: http://10.0.0.7:21002/worker_generate\ntrace")
    assert (
        user_error(error, "alpha") == "alpha could not answer: Connection refused: (address hidden)"
    )
    assert user_error(ValueError("")) == "ValueError"
