"""Verify recorded floorwatch deliveries with the reference Standard Webhooks
library (PyPI package `standardwebhooks`).

Usage: python3 reference_verifier.py DELIVERIES_JSON

The file contains {"secrets": ["whsec_...", ...], "deliveries": [{"headers":
{...}, "body": "..."}, ...]}. Every delivery must verify with each secret on
its own, which is what a receiver that knows only one key of a rotation sees.
Exits 0 when all verify, 1 when one does not, 2 when the library is missing.
"""

import json
import sys

try:
    from standardwebhooks import Webhook, WebhookVerificationError
except ImportError:
    print(
        "the reference library is missing: pip install standardwebhooks==1.1.0",
        file=sys.stderr,
    )
    sys.exit(2)


def main(path):
    with open(path, encoding="utf-8") as file:
        recorded = json.load(file)
    secrets = recorded["secrets"]
    deliveries = recorded["deliveries"]
    if not secrets or not deliveries:
        print("nothing to verify: no secrets or no deliveries", file=sys.stderr)
        return 1
    failures = 0
    for index, secret in enumerate(secrets):
        webhook = Webhook(secret)
        for delivery in deliveries:
            try:
                webhook.verify(delivery["body"], delivery["headers"])
            except WebhookVerificationError as error:
                failures += 1
                webhook_id = delivery["headers"].get("webhook-id")
                print(f"secret {index}: {webhook_id} failed: {error}", file=sys.stderr)
    checked = len(secrets) * len(deliveries)
    print(f"verified {checked - failures} of {checked} (delivery, secret) pairs")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
