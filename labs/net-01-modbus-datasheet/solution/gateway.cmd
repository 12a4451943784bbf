iiotlab gateway run --from-env
