"""Sample call data per shipped schema: the main job, the load tests and the test suites share it."""

from __future__ import annotations

SAMPLE_CALL_DATA: dict[str, dict[str, str]] = {
    "prior_auth": {
        "patient_name": "Jane Doe",
        "date_of_birth": "1980-01-15",
        "member_id": "XKM449812",
        "insurer": "Blue Cross",
        "cpt_code": "99213",
        "provider_name": "Doctor Smith",
        "provider_npi": "1234567893",
    },
    "sales_qualification": {"lead_name": "Tom Baker", "company": "Acme Logistics"},
}
