from execution_stream.cli import main

main()
