from neuralake.cli import main

main()
