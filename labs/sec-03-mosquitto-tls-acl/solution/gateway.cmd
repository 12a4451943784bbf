exec iiotlab gateway run --from-env
