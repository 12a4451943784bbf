python provision.py && exec iiotlab gateway run --from-env
