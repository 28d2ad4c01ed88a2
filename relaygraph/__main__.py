from relaygraph.cli import main

main()
