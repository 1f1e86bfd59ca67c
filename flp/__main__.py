from flp.cli import main

main()
