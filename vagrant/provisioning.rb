# frozen_string_literal: true

# Which of the Vagrantfile's provisioners a vagrant command is about to run, read from its arguments,
# so that every command that provisions gets the key check and the controller's Ansible first.
# Plain Ruby (no Vagrant needed), so that tests/unit/test_vagrantfile_env.py can call it directly.
module LabProvisioning
  # The commands that accept --provision and --provision-with.
  COMMANDS = %w[up reload resume provision].freeze

  # ARGV: vagrant's arguments (global options first). PROVISIONED: whether the machine was provisioned
  # before (Vagrant's action_provision mark). The answer: the provisioners' names, in the order given.
  #   --no-provision                            none
  #   --provision-with a,b (or =a,b)            those (it implies --provision)
  #   provision, or --provision                 lab (the only one without run: "never")
  #   the first up or reload of a machine       lab
  def self.to_run(argv, provisioned:)
    args = argv.drop_while { |a| a.start_with?("-") }
    return [] unless COMMANDS.include?(args.first)
    return [] if args.include?("--no-provision")

    named = args.each_with_index.flat_map do |arg, i|
      if arg == "--provision-with" then args[i + 1].to_s.split(",")
      elsif arg.start_with?("--provision-with=") then arg.delete_prefix("--provision-with=").split(",")
      else []
      end
    end
    return named unless named.empty?
    return ["lab"] if args.first == "provision" || args.include?("--provision")

    %w[up reload].include?(args.first) && !provisioned ? ["lab"] : []
  end
end
