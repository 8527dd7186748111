# The lab's `.env` file: settings the Vagrantfile would otherwise read from the environment, kept
# beside it so they need not be exported in every shell. The Vagrantfile loads this file; the unit
# tests (tests/unit/test_vagrantfile_env.py) run it with plain ruby.
#
# The format, one setting per line:
#   KEY=value            KEY='value'          KEY="value"          export KEY=value
#   # a comment          (blank lines)        KEY=value  # a comment after an unquoted value
# Quotes are taken literally, nothing in a value is expanded or unescaped. A variable already in the
# process environment, even set to empty, wins over the file.
#
# The file holds API keys: no message from here ever shows a line's content, only its number.
module LabDotenv
  # A line that isn't a setting, or a setting the lab doesn't read.
  class Error < StandardError; end

  LINE = /\A\s*(?:export\s+)?(?<key>[A-Za-z_][A-Za-z0-9_]*)\s*=\s*(?<value>.*?)\s*\z/
  # A value in quotes, then nothing but an optional comment.
  QUOTED = /\A(?<quote>["'])(?<inner>.*?)\k<quote>\s*(?:#.*)?\z/
  # Unquoted, a comment starts at a # after a space (a # inside a value stays).
  UNQUOTED_COMMENT = /\s+#.*\z/

  # The settings of PATH as a hash, in file order. With ALLOWED (a list of names), any other name
  # fails. Raises LabDotenv::Error naming PATH and the line number.
  def self.parse(path, allowed: nil)
    settings = {}
    where = {}
    File.readlines(path, chomp: true, encoding: "UTF-8").each_with_index do |line, index|
      number = index + 1
      raise Error, "#{path}, line #{number}: not UTF-8 text" unless line.valid_encoding?

      line = line.delete_prefix("\uFEFF") if number == 1 # a byte order mark some editors write
      next if line.strip.empty? || line.lstrip.start_with?("#")

      match = LINE.match(line)
      raise Error, "#{path}, line #{number}: not a KEY=VALUE setting (the line is not shown: it may hold a key)" unless match

      key = match[:key]
      if allowed && !allowed.include?(key)
        raise Error, "#{path}, line #{number}: not a setting the lab reads (it reads #{allowed.join(', ')})"
      end
      if where.key?(key)
        raise Error, "#{path}, line #{number}: sets again what line #{where[key]} set"
      end

      settings[key] = value_of(match[:value], path, number)
      where[key] = number
    end
    settings
  end

  def self.value_of(raw, path, number)
    if raw.start_with?('"', "'")
      quoted = QUOTED.match(raw)
      raise Error, "#{path}, line #{number}: a quote is not closed, or text follows the closing quote" unless quoted

      quoted[:inner]
    else
      raw.sub(UNQUOTED_COMMENT, "")
    end
  end
  private_class_method :value_of

  # Puts PATH's settings into ENV where the environment doesn't have them; nothing when PATH doesn't
  # exist. Returns the names it set (never their values).
  def self.load(path, allowed: nil, env: ENV)
    return [] unless File.file?(path)

    parse(path, allowed: allowed).each_with_object([]) do |(key, value), set|
      next if env.key?(key)

      env[key] = value
      set << key
    end
  end
end
