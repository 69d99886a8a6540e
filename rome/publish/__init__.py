"""What readers read, baked into a folder of static files: the national index, each state's
races and each race as JSON (the API's own shapes), race pages, a .gz beside each."""
