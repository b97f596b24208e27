"""Scenario: test and demo data (the shop-orders generator with its ground truth, River's datasets
as events); not service code.
"""
