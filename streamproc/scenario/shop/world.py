"""Scenario: the world the shop lives in: tax rates, currencies, customers' names and homes,
payment methods, and the broken values real sources send.

The reference declaration (pipelines/shop_orders.yaml) must match the rates and currencies it
lists; tests/unit/test_generator.py holds the two equal.
"""

from __future__ import annotations

import math

# The world the shop lives in. The reference declaration (pipelines/shop_orders.yaml) knows
# these standard VAT rates and currencies, and a test holds the two equal; real traffic also
# brings countries and currencies it does not know (below), whose orders the clean stage must
# send to the DLQ with their reason rather than guess.
TAX_RATES = {
    **{"AT": 0.20, "BE": 0.21, "BG": 0.20, "HR": 0.25, "CY": 0.19, "CZ": 0.21, "DK": 0.25},
    **{"EE": 0.24, "FI": 0.255, "FR": 0.20, "DE": 0.19, "GR": 0.24, "HU": 0.27, "IE": 0.23},
    **{"IT": 0.22, "LV": 0.21, "LT": 0.21, "LU": 0.17, "MT": 0.18, "NL": 0.21, "PL": 0.23},
    **{"PT": 0.23, "RO": 0.21, "SK": 0.23, "SI": 0.22, "ES": 0.21, "SE": 0.25},
    **{"IS": 0.24, "LI": 0.081, "NO": 0.25, "GB": 0.20, "CH": 0.081},
}
RATES_TO_EUR = {
    **{"EUR": 1.0, "USD": 0.86, "GBP": 1.14, "CHF": 1.07, "SEK": 0.091, "DKK": 0.134},
    **{"NOK": 0.085, "PLN": 0.235, "CZK": 0.041, "HUF": 0.0026},
}
# Destinations and currencies the declaration does not list: a web order shipped to one of
# these states no tax rate (unknown_tax_rate); an order paid in one has no rate to EUR.
UNLISTED_TAX_RATES = {"US": 0.0, "CA": 0.05, "JP": 0.10, "AU": 0.10, "TR": 0.20, "UA": 0.20}
UNLISTED_RATES_TO_EUR = {"JPY": 0.0058, "CAD": 0.62, "AUD": 0.56, "TRY": 0.021}
HOME_COUNTRY = "DE"
TILL_ZONE = "Europe/Berlin"
HOUR_MS = 3_600_000
MINUTE_MS = 60_000
RESUBMISSION_WINDOW_MS = 10 * MINUTE_MS  # a form sent again within it is the same order

GIVEN_NAMES = (
    "Ada",
    "Grace",
    "Alan",
    "Emmy",
    "Marie",
    "Lise",
    "Niels",
    "Rosa",
    "Hans",
    "Clara",
    "Jonas",
    "Lena",
    "Paul",
    "Mia",
    "Felix",
    "Anna",
    "Leon",
    "Ida",
    "Otto",
    "Greta",
)
FAMILY_NAMES = (
    "Lovelace",
    "Hopper",
    "Turing",
    "Noether",
    "Curie",
    "Meitner",
    "Bohr",
    "Franklin",
    "Planck",
    "Schmidt",
    "Weber",
    "Fischer",
    "Wagner",
    "Becker",
    "Hoffmann",
    "Richter",
    "Neumann",
    "Hartmann",
    "Krause",
    "Lehmann",
    "Kowalski",
    "Dubois",
    "Jansen",
)
# Where the shop's customers live (a German shop selling across Europe), and what they pay in
# on the web when it is not the euro.
HOMES = {
    **{"DE": 0.40, "FR": 0.07, "IT": 0.07, "ES": 0.06, "AT": 0.05, "NL": 0.05, "PL": 0.04},
    **{"BE": 0.03, "GB": 0.03, "CH": 0.03, "SE": 0.02, "DK": 0.02, "PT": 0.02, "CZ": 0.02},
    **{"IE": 0.01, "FI": 0.01, "GR": 0.01, "HU": 0.01, "RO": 0.01, "NO": 0.01, "SK": 0.01},
    **{"SI": 0.005, "HR": 0.005, "LU": 0.005, "LT": 0.005, "LV": 0.005, "EE": 0.005},
    **{"BG": 0.005, "CY": 0.002, "MT": 0.002, "IS": 0.002, "LI": 0.002},
}
HOME_CURRENCY = {
    **{"GB": "GBP", "CH": "CHF", "LI": "CHF", "SE": "SEK", "DK": "DKK", "NO": "NOK"},
    **{"PL": "PLN", "CZ": "CZK", "HU": "HUF"},
}
UNLISTED_SHARE = 0.1  # of orders shipped abroad: to a country the declaration does not list
UNLISTED_CURRENCY_RATE = 0.004  # of web orders: paid in a currency the declaration lacks
PAYMENT_METHODS = {
    "web": ("card", "paypal", "invoice"),
    "app": ("card", "applepay"),
    "pos": ("card", "cash"),
}
INVALID_REASONS = {
    "web": ("invalid_amount", "invalid_items", "invalid_duration", "text_too_long"),
    "app": ("invalid_amount", "unknown_currency", "invalid_items", "invalid_tax_rate"),
    "pos": ("invalid_amount", "unknown_timezone", "invalid_time", "invalid_items"),
}
# Broken values as real sources send them: not only negative, but absurd.
ABSURD_AMOUNTS = (-1.0, math.inf, 1e308)  # NaN: in the unit tests (NaN ≠ NaN in truths)
ABSURD_ITEMS = (0, -3, 2**31 - 1)
