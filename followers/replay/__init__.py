"""Replay: a portfolio's recorded leader events run for a hypothetical
follower through the fan-out's own decision code, writing nothing.

- ``book``: the hypothetical copy wallet in memory (the venue's arithmetic)
- ``engine``: the loop over events and marks, the watchdog's rules, the fees
- ``history``: loads a portfolio's events, instruments and recorded marks
- ``simulator``: "what would I have earned" (the API's simulate), cached
"""
