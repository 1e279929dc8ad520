"""Cost to the nano-dollar: Decimal prices from their shortest decimal form, cache reads and
writes at their own prices (default: the input price)."""

from __future__ import annotations

from decimal import Decimal

from aigw_config.kinds import Pricing
from aigw_gateway.limits import cost_nano, usage_cost_nano, usage_counts


def test_prices_are_exact_decimals_not_binary_floats():
    # 0.1 + 0.2 per million as floats is 0.30000000000000004: one token would round the wrong way.
    assert cost_nano(Pricing(input_per_million=0.1, output_per_million=0.2), 1, 1) == 300
    assert cost_nano(Pricing(input_per_million=0.0000015), 1, 0) == 0  # 0.0015 nano: rounds to 0
    assert cost_nano(Pricing(input_per_million=0.0025), 1, 0) == 2  # 2.5 nano: half to even
    assert cost_nano(Pricing(input_per_million=0.0035), 1, 0) == 4
    price = Pricing(input_per_million=2.5, output_per_million=10)
    assert cost_nano(price, 123_456_789, 987_654) == int(Decimal(123_456_789) * 2500 + Decimal(987_654) * 10_000)


def test_cache_reads_and_writes_have_their_own_prices():
    usage = {"prompt_tokens": 1000, "completion_tokens": 10,
             "prompt_tokens_details": {"cached_tokens": 600, "cache_write_tokens": 300},
             "completion_tokens_details": {"reasoning_tokens": 4}}
    assert usage_counts(usage) == (1000, 10, 600, 300, 4)
    priced = Pricing(input_per_million=3, output_per_million=15, cache_read_per_million=0.3,
                     cache_write_per_million=3.75)
    assert usage_cost_nano(priced, usage) == 100 * 3000 + 600 * 300 + 300 * 3750 + 10 * 15000
    plain = Pricing(input_per_million=3, output_per_million=15)  # default: the input price
    assert usage_cost_nano(plain, usage) == 1000 * 3000 + 10 * 15000
    assert usage_cost_nano(None, usage) == 0 and usage_cost_nano(priced, None) == 0


def test_integer_and_decimal_paths_agree():
    fine = Pricing(input_per_million=0.1234567890123, output_per_million=1e-13)  # past the integer scale
    assert cost_nano(fine, 10**9, 10**9) == int((Decimal("0.1234567890123") * 1000 * 10**9
                                                 + Decimal("1E-13") * 1000 * 10**9).to_integral_value())
    for prompt in range(0, 40):
        for price in (0.0005, 0.0015, 0.0025, 0.15, 3.75):
            decimal = (Decimal(repr(price)) * 1000 * prompt).to_integral_value()  # half to even
            assert cost_nano(Pricing(input_per_million=price), prompt, 0) == int(decimal), (price, prompt)
