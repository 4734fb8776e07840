"""What both ceiling services share: the request they validate and the constant answer they send.

No web framework here, so the bare-ASGI service measures nothing it does not use.
"""

from __future__ import annotations

from typing import Annotated

import msgspec

JSON = "application/json"
MAX_BODY_BYTES = 4 * 1024 * 1024  # the runtime's default MAX_BODY_BYTES
FEATURE_NAMES = (
    "nicheAlignment", "audienceMatch", "engagementRate", "brandFit", "locationMatch",
    "budgetAlignment", "contentQuality", "responseRate", "accountAge", "activityScore",
    "lastActiveScore", "connectionAcceptance", "profileCompletion", "portfolioQuality",
    "networkStrength", "mutualConnections", "connectionDiversity", "postingConsistency",
    "contentEngagement",
)  # fmt: skip

Unit = Annotated[float, msgspec.Meta(ge=0.0, le=1.0)]
PredictRequest = msgspec.defstruct(
    "PredictRequest", [(name, Unit) for name in FEATURE_NAMES], forbid_unknown_fields=True
)
DECODER = msgspec.json.Decoder(PredictRequest)
RESPONSE = msgspec.json.encode(
    {
        "score": 50.0,
        "confidence": 0.0,
        "successProbability": 50.0,
        "featureImportance": {name: 1.0 / len(FEATURE_NAMES) for name in FEATURE_NAMES},
        "modelVersion": "ceiling",
    }
)
