from hardcarbon.cli import main

main()
