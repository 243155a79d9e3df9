from neuralake.lab.cli import main

main()
