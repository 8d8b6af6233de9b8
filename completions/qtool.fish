# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_qtool_global_optspecs
    string join \n C/config= d/queue-dir= v/verbose q/quiet h/help V/version
end

function __fish_qtool_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_qtool_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_qtool_using_subcommand
    set -l cmd (__fish_qtool_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c qtool -n "__fish_qtool_needs_command" -s C -l config -d 'Configuration file [default: ./qtool.yaml, then /etc/qtool/qtool.yaml]' -r -F
complete -c qtool -n "__fish_qtool_needs_command" -s d -l queue-dir -d 'Directory holding one directory per queue (overrides the config\'s queue_dir)' -r -F
complete -c qtool -n "__fish_qtool_needs_command" -s v -l verbose -d 'Say more: per-entry log lines'
complete -c qtool -n "__fish_qtool_needs_command" -s q -l quiet -d 'Say less: no summaries, only errors and entries that failed'
complete -c qtool -n "__fish_qtool_needs_command" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c qtool -n "__fish_qtool_needs_command" -s V -l version -d 'Print version'
complete -c qtool -n "__fish_qtool_needs_command" -f -a "enqueue" -d 'Add messages to a queue'
complete -c qtool -n "__fish_qtool_needs_command" -f -a "dequeue" -d 'Take the oldest (or a named) entry out of a queue'
complete -c qtool -n "__fish_qtool_needs_command" -f -a "run-once" -d 'Recover, then drain a queue once through a handler (for cron)'
complete -c qtool -n "__fish_qtool_needs_command" -f -a "run" -d 'Run a runner until stopped, or supervise all of them with --all'
complete -c qtool -n "__fish_qtool_needs_command" -f -a "dump" -d 'Print an entry\'s metadata as Mailman\'s dump_msgdata does'
complete -c qtool -n "__fish_qtool_needs_command" -f -a "completions" -d 'Print shell completions'
complete -c qtool -n "__fish_qtool_needs_command" -f -a "man" -d 'Write the man pages (for packagers; the project ships them in man/)'
complete -c qtool -n "__fish_qtool_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c qtool -n "__fish_qtool_using_subcommand enqueue" -l mbox -d 'Enqueue every message of an mbox file' -r -F
complete -c qtool -n "__fish_qtool_using_subcommand enqueue" -l maildir -d 'Enqueue every message of a Maildir (cur/ and new/), leaving it in place' -r -F
complete -c qtool -n "__fish_qtool_using_subcommand enqueue" -s m -l meta -d 'Metadata KEY=VALUE, VALUE read as YAML (n=3 is a number, r=[a, b] a list)' -r
complete -c qtool -n "__fish_qtool_using_subcommand enqueue" -l meta-file -d 'Metadata from a YAML mapping in FILE (-m wins over it)' -r -F
complete -c qtool -n "__fish_qtool_using_subcommand enqueue" -s C -l config -d 'Configuration file [default: ./qtool.yaml, then /etc/qtool/qtool.yaml]' -r -F
complete -c qtool -n "__fish_qtool_using_subcommand enqueue" -s d -l queue-dir -d 'Directory holding one directory per queue (overrides the config\'s queue_dir)' -r -F
complete -c qtool -n "__fish_qtool_using_subcommand enqueue" -l plaintext -d 'Mark the entries as plain text (_parsemsg: true, Mailman\'s _plaintext)'
complete -c qtool -n "__fish_qtool_using_subcommand enqueue" -s v -l verbose -d 'Say more: per-entry log lines'
complete -c qtool -n "__fish_qtool_using_subcommand enqueue" -s q -l quiet -d 'Say less: no summaries, only errors and entries that failed'
complete -c qtool -n "__fish_qtool_using_subcommand enqueue" -s h -l help -d 'Print help'
complete -c qtool -n "__fish_qtool_using_subcommand dequeue" -s o -l output -d 'Write the message to FILE instead of standard output' -r -F
complete -c qtool -n "__fish_qtool_using_subcommand dequeue" -l meta-out -d 'Write the metadata as YAML to FILE' -r -F
complete -c qtool -n "__fish_qtool_using_subcommand dequeue" -s C -l config -d 'Configuration file [default: ./qtool.yaml, then /etc/qtool/qtool.yaml]' -r -F
complete -c qtool -n "__fish_qtool_using_subcommand dequeue" -s d -l queue-dir -d 'Directory holding one directory per queue (overrides the config\'s queue_dir)' -r -F
complete -c qtool -n "__fish_qtool_using_subcommand dequeue" -s v -l verbose -d 'Say more: per-entry log lines'
complete -c qtool -n "__fish_qtool_using_subcommand dequeue" -s q -l quiet -d 'Say less: no summaries, only errors and entries that failed'
complete -c qtool -n "__fish_qtool_using_subcommand dequeue" -s h -l help -d 'Print help'
complete -c qtool -n "__fish_qtool_using_subcommand run-once" -l forward -d 'Handler: enqueue each entry to QUEUE' -r
complete -c qtool -n "__fish_qtool_using_subcommand run-once" -l log-file -d 'Log to FILE instead of standard error (reopened on SIGHUP)' -r -F
complete -c qtool -n "__fish_qtool_using_subcommand run-once" -l grace -d 'After a stop, how long a running handler may go on before it is killed and its entry put back' -r
complete -c qtool -n "__fish_qtool_using_subcommand run-once" -s C -l config -d 'Configuration file [default: ./qtool.yaml, then /etc/qtool/qtool.yaml]' -r -F
complete -c qtool -n "__fish_qtool_using_subcommand run-once" -s d -l queue-dir -d 'Directory holding one directory per queue (overrides the config\'s queue_dir)' -r -F
complete -c qtool -n "__fish_qtool_using_subcommand run-once" -l all -d 'Supervise every runner of the config with `start: true` (run only)'
complete -c qtool -n "__fish_qtool_using_subcommand run-once" -l discard -d 'Handler: drop each entry'
complete -c qtool -n "__fish_qtool_using_subcommand run-once" -s v -l verbose -d 'Say more: per-entry log lines'
complete -c qtool -n "__fish_qtool_using_subcommand run-once" -s q -l quiet -d 'Say less: no summaries, only errors and entries that failed'
complete -c qtool -n "__fish_qtool_using_subcommand run-once" -s h -l help -d 'Print help'
complete -c qtool -n "__fish_qtool_using_subcommand run" -l forward -d 'Handler: enqueue each entry to QUEUE' -r
complete -c qtool -n "__fish_qtool_using_subcommand run" -l log-file -d 'Log to FILE instead of standard error (reopened on SIGHUP)' -r -F
complete -c qtool -n "__fish_qtool_using_subcommand run" -l grace -d 'After a stop, how long a running handler may go on before it is killed and its entry put back' -r
complete -c qtool -n "__fish_qtool_using_subcommand run" -s C -l config -d 'Configuration file [default: ./qtool.yaml, then /etc/qtool/qtool.yaml]' -r -F
complete -c qtool -n "__fish_qtool_using_subcommand run" -s d -l queue-dir -d 'Directory holding one directory per queue (overrides the config\'s queue_dir)' -r -F
complete -c qtool -n "__fish_qtool_using_subcommand run" -l all -d 'Supervise every runner of the config with `start: true` (run only)'
complete -c qtool -n "__fish_qtool_using_subcommand run" -l discard -d 'Handler: drop each entry'
complete -c qtool -n "__fish_qtool_using_subcommand run" -s v -l verbose -d 'Say more: per-entry log lines'
complete -c qtool -n "__fish_qtool_using_subcommand run" -s q -l quiet -d 'Say less: no summaries, only errors and entries that failed'
complete -c qtool -n "__fish_qtool_using_subcommand run" -s h -l help -d 'Print help'
complete -c qtool -n "__fish_qtool_using_subcommand dump" -l skip -d 'Hide KEY too (repeatable)' -r
complete -c qtool -n "__fish_qtool_using_subcommand dump" -l format -d 'Output format' -r -f -a "text\t'Mailman\'s dump_msgdata: sorted, padded `key: value` lines'
yaml\t''
json\t''"
complete -c qtool -n "__fish_qtool_using_subcommand dump" -s C -l config -d 'Configuration file [default: ./qtool.yaml, then /etc/qtool/qtool.yaml]' -r -F
complete -c qtool -n "__fish_qtool_using_subcommand dump" -s d -l queue-dir -d 'Directory holding one directory per queue (overrides the config\'s queue_dir)' -r -F
complete -c qtool -n "__fish_qtool_using_subcommand dump" -l message -d 'Print the message after the metadata'
complete -c qtool -n "__fish_qtool_using_subcommand dump" -l all -d 'Show every key, received_time included'
complete -c qtool -n "__fish_qtool_using_subcommand dump" -s v -l verbose -d 'Say more: per-entry log lines'
complete -c qtool -n "__fish_qtool_using_subcommand dump" -s q -l quiet -d 'Say less: no summaries, only errors and entries that failed'
complete -c qtool -n "__fish_qtool_using_subcommand dump" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c qtool -n "__fish_qtool_using_subcommand completions" -s C -l config -d 'Configuration file [default: ./qtool.yaml, then /etc/qtool/qtool.yaml]' -r -F
complete -c qtool -n "__fish_qtool_using_subcommand completions" -s d -l queue-dir -d 'Directory holding one directory per queue (overrides the config\'s queue_dir)' -r -F
complete -c qtool -n "__fish_qtool_using_subcommand completions" -s v -l verbose -d 'Say more: per-entry log lines'
complete -c qtool -n "__fish_qtool_using_subcommand completions" -s q -l quiet -d 'Say less: no summaries, only errors and entries that failed'
complete -c qtool -n "__fish_qtool_using_subcommand completions" -s h -l help -d 'Print help'
complete -c qtool -n "__fish_qtool_using_subcommand man" -s C -l config -d 'Configuration file [default: ./qtool.yaml, then /etc/qtool/qtool.yaml]' -r -F
complete -c qtool -n "__fish_qtool_using_subcommand man" -s d -l queue-dir -d 'Directory holding one directory per queue (overrides the config\'s queue_dir)' -r -F
complete -c qtool -n "__fish_qtool_using_subcommand man" -s v -l verbose -d 'Say more: per-entry log lines'
complete -c qtool -n "__fish_qtool_using_subcommand man" -s q -l quiet -d 'Say less: no summaries, only errors and entries that failed'
complete -c qtool -n "__fish_qtool_using_subcommand man" -s h -l help -d 'Print help'
complete -c qtool -n "__fish_qtool_using_subcommand help; and not __fish_seen_subcommand_from enqueue dequeue run-once run dump completions man help" -f -a "enqueue" -d 'Add messages to a queue'
complete -c qtool -n "__fish_qtool_using_subcommand help; and not __fish_seen_subcommand_from enqueue dequeue run-once run dump completions man help" -f -a "dequeue" -d 'Take the oldest (or a named) entry out of a queue'
complete -c qtool -n "__fish_qtool_using_subcommand help; and not __fish_seen_subcommand_from enqueue dequeue run-once run dump completions man help" -f -a "run-once" -d 'Recover, then drain a queue once through a handler (for cron)'
complete -c qtool -n "__fish_qtool_using_subcommand help; and not __fish_seen_subcommand_from enqueue dequeue run-once run dump completions man help" -f -a "run" -d 'Run a runner until stopped, or supervise all of them with --all'
complete -c qtool -n "__fish_qtool_using_subcommand help; and not __fish_seen_subcommand_from enqueue dequeue run-once run dump completions man help" -f -a "dump" -d 'Print an entry\'s metadata as Mailman\'s dump_msgdata does'
complete -c qtool -n "__fish_qtool_using_subcommand help; and not __fish_seen_subcommand_from enqueue dequeue run-once run dump completions man help" -f -a "completions" -d 'Print shell completions'
complete -c qtool -n "__fish_qtool_using_subcommand help; and not __fish_seen_subcommand_from enqueue dequeue run-once run dump completions man help" -f -a "man" -d 'Write the man pages (for packagers; the project ships them in man/)'
complete -c qtool -n "__fish_qtool_using_subcommand help; and not __fish_seen_subcommand_from enqueue dequeue run-once run dump completions man help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
