# Word and character statistics of a text (seed 001's "Text Analyzer").
def run(args):
    text = args.get("text", "")
    if not text:
        return {"ok": False, "error": {"message": "Missing parameter: text", "type": "ValueError"}}
    words = text.split()
    return {
        "ok": True,
        "data": {
            "length": len(text),
            "wordCount": len(words),
            "charCount": len(text.replace(" ", "")),
            "uppercase": text.upper(),
        },
    }
