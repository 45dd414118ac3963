# Checks e-mail addresses against a pattern (seed 001's "Data Validator").
import re

PATTERN = re.compile(r"^[a-zA-Z0-9._%+-]+@[a-zA-Z0-9.-]+\.[a-zA-Z]{2,}$")


def run(args):
    email = args["email"]
    valid = bool(PATTERN.match(email))
    return {"email": email, "valid": valid,
            "message": "Valid email" if valid else "Invalid email"}
